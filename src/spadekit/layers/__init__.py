"""spadekit.layers"""
