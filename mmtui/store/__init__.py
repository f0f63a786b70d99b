"""mmtui.store"""
