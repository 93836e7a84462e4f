from aura_memory.server import main

main()
