"""mmtui.query.understanding"""
