"""deskside.console"""
