"""Training stages (run as python -m train.<stage>, or through accelerate launch -m): SFT, self-play, DPO."""
