"""Grid puzzles (Sudoku, Latin squares, Killer Sudoku, Futoshiki) as canvas constraints solved by denoising."""
