"""Collects the Markdown report as it is printed."""
LINES = []


def emit(text=""):
    print(text, flush=True)
    LINES.append(text)


def write(path):
    with open(path, "w") as f:
        f.write("\n".join(LINES) + "\n")
