"""Mesa agent classes: what each cell IS. Their attributes read the model's arrays and their
behaviour calls the same kernel functions as the batch step (one source of truth per rule)."""
from .carnk import CARNKCell
from .cart import CARTCell
from .tumor import TumorCell

__all__ = ["CARNKCell", "CARTCell", "TumorCell"]
