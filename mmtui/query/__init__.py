"""mmtui.query"""
