"""Operations endpoints: liveness and readiness (metrics join them later)."""
