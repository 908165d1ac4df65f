"""Tools around the curriculum: the batch runner and its summary, model conversion, the data builders and the
notebook cleaner. The notebooks import `helpers`; these are run as commands (`python -m tools.batch`, ...)."""
