@_exported import BERT
@_exported import Tasks
