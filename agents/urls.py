from rest_framework.routers import SimpleRouter

from agents.notifications.views import NotificationChannelViewSet
from agents.views import AgentViewSet

router = SimpleRouter(trailing_slash=False)
router.register("agents", AgentViewSet, basename="agent")
router.register("notification-channels", NotificationChannelViewSet, basename="notification-channel")

urlpatterns = router.urls
