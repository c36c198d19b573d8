from .env import env_int, env_list, env_str

# Uploads and fetched pages above this size are refused (413 for uploads).
KNOWLEDGE_MAX_FILE_BYTES = env_int("KNOWLEDGE_MAX_FILE_BYTES", 25 * 1024 * 1024)
# Extracted text beyond this many characters per document is cut (bounds hostile input).
KNOWLEDGE_MAX_TEXT_CHARS = env_int("KNOWLEDGE_MAX_TEXT_CHARS", 5_000_000)
# Chunking, in tokens of the MiniLM word-piece tokenizer (the model reads at most 256).
KNOWLEDGE_CHUNK_TOKENS = env_int("KNOWLEDGE_CHUNK_TOKENS", 200)
KNOWLEDGE_CHUNK_OVERLAP = env_int("KNOWLEDGE_CHUNK_OVERLAP", 40)
# URL sources: private, loopback and link-local addresses are refused unless listed here
# (host names or CIDR networks), e.g. an intranet wiki. An alias of OUTBOUND_ALLOWLIST (syntera/outbound/).
KNOWLEDGE_URL_ALLOWLIST = env_list("KNOWLEDGE_URL_ALLOWLIST", "")
# URL fetches: seconds per connect / read, and in total per page (redirects, headers and body).
KNOWLEDGE_FETCH_TIMEOUT = env_int("KNOWLEDGE_FETCH_TIMEOUT", 20)
KNOWLEDGE_FETCH_DEADLINE = env_int("KNOWLEDGE_FETCH_DEADLINE", 60)
KNOWLEDGE_CRAWL_MAX_PAGES = env_int("KNOWLEDGE_CRAWL_MAX_PAGES", 200)
KNOWLEDGE_CRAWL_MAX_DEPTH = env_int("KNOWLEDGE_CRAWL_MAX_DEPTH", 3)
KNOWLEDGE_CRAWL_MAX_BYTES = env_int("KNOWLEDGE_CRAWL_MAX_BYTES", 50 * 1024 * 1024)
# A source stuck in "processing" without progress this long is handed to a worker again...
KNOWLEDGE_STALL_SECONDS = env_int("KNOWLEDGE_STALL_SECONDS", 300)
# ...at most this many times in a row; then it is marked failed with the reason (a source
# whose runs keep dying, e.g. at the hard time limit, is not queued again forever).
KNOWLEDGE_MAX_STALLS = env_int("KNOWLEDGE_MAX_STALLS", 3)
# Ingestions running at once per workspace; more wait in the queue (re-queued after
# KNOWLEDGE_CONCURRENCY_RETRY_SECONDS, plus jitter), so one workspace cannot take every worker.
KNOWLEDGE_TENANT_CONCURRENCY = env_int("KNOWLEDGE_TENANT_CONCURRENCY", 2)
KNOWLEDGE_CONCURRENCY_RETRY_SECONDS = env_int("KNOWLEDGE_CONCURRENCY_RETRY_SECONDS", 15)
# pgvector: exact (brute-force) vector search up to this many candidate chunks (by the
# sources' chunk counts): perfect recall, no HNSW post-filter loss, and for 384-d vectors an
# index-only scan about as fast as HNSW at this size. Filters too selective for HNSW (see
# apps/knowledge/stores/pgvector.py) are searched exactly whatever their size.
KNOWLEDGE_EXACT_SEARCH_MAX = env_int("KNOWLEDGE_EXACT_SEARCH_MAX", 10_000)
# pgvector: the least hnsw.ef_search of an HNSW query; raised with the filter's selectivity.
KNOWLEDGE_HNSW_EF_SEARCH = env_int("KNOWLEDGE_HNSW_EF_SEARCH", 100)
# Where vectors live: "pgvector" (default, the tenant's schema) or "pinecone" (below).
KNOWLEDGE_VECTOR_STORE = env_str("KNOWLEDGE_VECTOR_STORE", "pgvector")
# Pinecone store (KNOWLEDGE_VECTOR_STORE="pinecone"): one namespace per tenant, one dense
# cosine index per embedding dimension named f"{PINECONE_INDEX}-{dimension}" (syntera-384,
# syntera-1536). PINECONE_INDEX_HOST connects to data-plane hosts directly instead of
# resolving the names: one host for every dimension, or "384=https://...,1536=https://...".
# PINECONE_CONTROLLER_HOST overrides the control-plane URL (default Pinecone's).
PINECONE_API_KEY = env_str("PINECONE_API_KEY", "")
PINECONE_INDEX = env_str("PINECONE_INDEX", "syntera")
PINECONE_INDEX_HOST = env_str("PINECONE_INDEX_HOST", "")
PINECONE_CONTROLLER_HOST = env_str("PINECONE_CONTROLLER_HOST", "")
