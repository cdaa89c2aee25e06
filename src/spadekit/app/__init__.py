"""spadekit.app"""
