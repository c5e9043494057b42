"""Collects a section of the Markdown report as it is printed."""
LINES = []


def emit(text=""):
    print(text, flush=True)
    LINES.append(text)


def take():
    """The lines emitted since the last take, as one Markdown string."""
    text = "\n".join(LINES) + "\n"
    LINES.clear()
    return text
