"""Published numbers the reproductions are compared with, one CSV per table, each naming its
source (paper, table, page) in a header comment and a ``source`` column. Read them with
``importlib.resources.files("lexppl.reproduce.references")``."""
