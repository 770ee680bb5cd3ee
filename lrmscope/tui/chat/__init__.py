"""`lrmscope chat`: the app (app.py) and its dialogs (screens.py)."""
