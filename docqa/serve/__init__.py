"""`docqa serve`: the HTTP API and the web page (needs the ``serve`` extra:
``pip install 'docqa[serve]'``).

>>> from docqa import DocQA, create_app  # doctest: +SKIP
>>> app = create_app(DocQA(), ["manuals/"], token="s3cret")  # doctest: +SKIP
"""

from docqa.serve.app import create_app

__all__ = ["create_app"]
