"""Reports of finished (or running) searches: `build.write_report(save_dir)` picks the report for the folder.

selection.py (pure functions over records), tables.py, markdown.py, fragments.py, search.py (token searches:
SANAS and one-shot), fbnet.py (FBNet), and figures/ (one module per figure).
"""

import zlib  # noqa: F401  # isort: skip  # before paddle, see ppnas/__init__.py
