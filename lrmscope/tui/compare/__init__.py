"""`lrmscope compare`: one prompt under several decoding modes, side by side (app.py)."""
