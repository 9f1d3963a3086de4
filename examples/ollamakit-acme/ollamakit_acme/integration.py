"""An integration for ``ollamakit launch acme-agent``: Acme's in-house coding agent, described
declaratively. ``launch`` finds the tool, picks the model, merges ``~/.acme/agent.json`` (keeping
the user's other settings) and starts ``acme-agent`` with the arguments and environment below."""

from ollamakit.integrations import ConfigFile, Integration


def agent_settings(settings, ctx):
    settings["endpoint"] = ctx.host + "/v1"
    settings["models"] = [model.name for model in ctx.models]
    return settings


ACME_AGENT = Integration(
    name="acme-agent",
    display_name="Acme Agent",
    description="Acme's coding agent",
    executable="acme-agent",
    install_command=("pip", "install", "acme-agent"),
    args=("--model", "{model}"),
    env={"ACME_AGENT_BASE_URL": "{host}/v1"},
    files=(ConfigFile(".acme/agent.json", update=agent_settings),),
    lists_models=True,
)
