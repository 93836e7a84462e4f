from aura_llm.server import main

main()
