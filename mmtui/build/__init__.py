"""mmtui.build"""
