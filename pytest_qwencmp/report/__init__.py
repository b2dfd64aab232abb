"""report — how results read: terminal tables, Markdown, the JSON document, HTML, charts, JUnit.

Owns: the shared wording of numbers and records (``formatting``), terminal
and Markdown tables and the run's settings lines (``text``), the
``--qwencmp-json`` document (``results``, schema ``results.schema.json``), the
HTML block and page (``html``, markup in ``templates/``, CSS and JS in
``assets/``), the SVG charts (``charts``) and JUnit properties and files
(``junit``). Input is plain JSON-able records, so every report renders the same
on an xdist controller, in pytest-html and in a merge job. Never imports
``comparison``, ``session`` or ``closing``. Import from the modules; nothing is re-exported here.
"""
