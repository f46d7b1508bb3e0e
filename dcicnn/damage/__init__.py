"""What is known of an image's damage: the JPEG reading (the file's tables, the pixels' lattice), the noise reading,
the network's condition inputs built from them, and the JPEG consistency projection. Below ``restore``."""
