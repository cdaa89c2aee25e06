"""spadekit.eval"""
