"""deskside.agent"""
