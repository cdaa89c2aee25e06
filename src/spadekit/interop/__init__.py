"""spadekit.interop"""
