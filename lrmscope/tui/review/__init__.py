"""`lrmscope review`: the app (app.py), its list screens (screens.py), a sample (sample.py), the
metrics (metrics.py), dialogs (modals.py), what the screens share (base.py) and their text
(text.py)."""
