"""Tests of the sandbox package, one module per sandbox module, over real HTTP on 127.0.0.1."""
