"""The splatcodec codec: quantization, entropy coding, the ``.gsplat`` container and rate control."""
