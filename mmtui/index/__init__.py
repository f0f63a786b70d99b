"""mmtui.index"""
