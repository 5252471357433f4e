"""Where the data lives and how the model is trained."""

RAW_DATA = "data/sales.csv"
OUT_FOLDER = "outcomes/"

COUNTRIES = ["France", "Germany", "Spain"]
FEATURES = ["France", "Germany", "Spain", "age", "salary"]
TARGET = "purchased"

LEARNING_RATE = 0.5
EPOCHS = 300
