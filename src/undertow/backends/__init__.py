"""undertow.backends"""
