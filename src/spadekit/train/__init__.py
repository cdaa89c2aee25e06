"""spadekit.train"""
