"""undertow.output"""
