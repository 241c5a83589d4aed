"""deskside.protocol"""
