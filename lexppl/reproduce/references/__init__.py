"""Published numbers the reproductions are compared with, one CSV per table, each naming its
source (paper, section, table; our text copies of the papers carry no page numbers) in a header
comment and a ``source`` column. Read them with
``importlib.resources.files("lexppl.reproduce.references")``."""
