// Placeholder entry point; the CLI arrives with the server issue.
print("znbd: nothing here yet")
