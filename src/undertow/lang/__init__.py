"""undertow.lang"""
