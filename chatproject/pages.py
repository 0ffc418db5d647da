"""The web pages: the chat page (session auth) and its login and register pages."""

from django import forms
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import ensure_csrf_cookie

from accounts import services
from chatproject.errors import ChatError, RateLimited


@login_required
@ensure_csrf_cookie  # the page's API calls send it back as X-CSRFToken
def index(request: HttpRequest) -> HttpResponse:
    return render(request, "chat.html")


class RegisterForm(forms.Form):
    username = forms.CharField(max_length=32)
    display_name = forms.CharField(max_length=64, required=False)
    password = forms.CharField(widget=forms.PasswordInput, max_length=128, strip=False)


def _throttled(request: HttpRequest, form: forms.Form, template: str) -> HttpResponse | None:
    """AUTH_RATE_LIMIT for the pages, as for the API: the form again, with 429."""
    try:
        services.check_auth_rate(address=request.META.get("REMOTE_ADDR") or "unknown")
    except RateLimited as exc:
        form.add_error(None, exc.message)
        response = render(request, template, {"form": form}, status=429)
        response["Retry-After"] = str(exc.retry_after)
        return response
    return None


class LoginView(auth_views.LoginView):
    redirect_authenticated_user = True
    template_name: str = "registration/login.html"  # Django's, as a str (the base allows None)

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        refused = _throttled(request, self.get_form(), self.template_name)
        return refused or super().post(request, *args, **kwargs)


def register(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("index")
    form = RegisterForm(request.POST or None)
    if request.method == "POST":
        refused = _throttled(request, form, "registration/register.html")
        if refused:
            return refused
    if request.method == "POST" and form.is_valid():
        try:
            user = services.register_user(**form.cleaned_data)
        except ChatError as exc:
            for field, errors in exc.fields.items():
                for error in errors:
                    form.add_error(field if field in form.fields else None, error)
            if not exc.fields:
                form.add_error(None, exc.message)
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("index")
    return render(request, "registration/register.html", {"form": form})
