"""Frozen encoder adapters: text, reference image, and the video latent space."""
