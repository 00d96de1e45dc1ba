"""Server-rendered web portal: the data owner's pages, the public certificate check and the
legal team's dashboard. Views are thin: they validate a form and call one service."""
