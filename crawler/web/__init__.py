"""``sitewatch web``: the editors' workspace over the history (Flask, server-rendered, no
JavaScript). Modules: ``app`` (headers, CSRF, errors), ``owner`` and ``admin`` (routes),
``state`` (config, owners, per-thread store), ``tokens`` (signing), ``serve`` (the
command). Templates: ``reports/templates/web``; view data: ``reports.workspace_view``.
"""
