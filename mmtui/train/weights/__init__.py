"""mmtui.train.weights"""
