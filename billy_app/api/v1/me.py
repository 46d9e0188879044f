"""Who the credential is (for `agent-billy status`), and signing an agent token out (`logout`)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from billy_app.api.v1.calls import CurrentActor
from billy_app.api.v1.errors import READ_ERRORS
from services import agent_tokens
from services.permissions import role_label

router = APIRouter(prefix="/me", tags=["me"])


class Me(BaseModel):
    member_email: str
    role: str
    role_label: str
    token_id: str | None = Field(description="The agent token acting; null for an access token.")
    client_name: str | None = Field(description="The client the agent token was issued to.")
    scope: str = Field(description='The token\'s scope in words, e.g. "read-only" or "as your role".')


@router.get("", response_model=Me, responses=READ_ERRORS, summary="Who is calling")
def me(actor: CurrentActor) -> Me:
    scope = agent_tokens.scope_words(actor.scope) if actor.scope is not None else "as your role"
    return Me(
        member_email=actor.email,
        role=actor.role,
        role_label=role_label(actor),
        token_id=actor.token_id or None,
        client_name=actor.token_client or None,
        scope=scope,
    )


@router.delete(
    "/token",
    status_code=204,
    response_class=Response,
    responses=READ_ERRORS,
    summary="Revoke the calling agent token (sign out)",
    description="Its next call is refused (401). An access token cannot revoke itself: 403.",
)
def revoke_token(actor: CurrentActor) -> Response:
    agent_tokens.revoke_own_token(actor)
    return Response(status_code=204)
