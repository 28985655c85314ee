@_exported import BERT
@_exported import Tasks
@_exported import Tensor
