print("cofi")
