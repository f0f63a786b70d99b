"""mmtui.evaluation"""
