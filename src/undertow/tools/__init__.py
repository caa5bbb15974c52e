"""undertow.tools"""
