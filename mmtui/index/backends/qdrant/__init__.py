"""mmtui.index.backends.qdrant"""
