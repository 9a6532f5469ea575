"""Model families behind one interface: CatBoost, MLP and CNN-LSTM."""
