"""spadekit.models"""
