"""mmtui.index.backends"""
