"""Drop-in forwards with the stock modules' maths, one module per thing they speed (switch.py turns them on and off)."""
